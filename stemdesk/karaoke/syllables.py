"""A word's sung syllables, guessed from its letters: what the aligner counts, since one sung syllable is usually
one note and one burst of the voice.

A syllable is a group of vowels with the consonants before it; consonants after the last vowel join the last
syllable, so the syllables' texts always join back to the word exactly (punctuation and all). The vowels are those of
the Latin-script languages the aligner is tuned for (English, French, Spanish, German and their accented letters), plus
y, which sings as a vowel between consonants in all four. Two rules differ by language, because they change the
count a singer sings:

- French: a final "e", "es" or "ent" after a consonant is mostly swallowed in speech but very often sung, so it stays
  a syllable (a song's "même" is two notes far more often than one); no rule.
- English: a final silent "e" after a consonant ("time", "make") is no syllable, except in "-le" ("little").

Words without Latin vowels (digits, other scripts, emoji) still get at least one syllable, so no word is ever left
without a place in time: letters of scripts that do not write their vowels (Arabic, Hebrew) count one syllable per
two letters, digits one each, anything else (an emoji, a dash) one for the word.
"""

from __future__ import annotations

import unicodedata

VOWELS = frozenset("aeiouyàâäáãåæèéêëìíîïòóôöõøœùúûüÿ")
# scripts that leave most vowels unwritten: a syllable is counted every this many letters
ABJAD_LETTERS_PER_SYLLABLE = 2
ABJADS = ("ARABIC", "HEBREW", "SYRIAC")


def _is_vowel(char: str) -> bool:
    return char.lower() in VOWELS


def split(word: str, language: str | None = None) -> list[str]:
    """The syllables of ``word`` as texts that join back to it exactly; at least one, even for "" or "🎤"."""
    if not word:
        return [word]
    lowered = word.lower()
    vowels = [_is_vowel(char) for char in lowered]
    for index, char in enumerate(lowered):
        # "y" before a vowel is a consonant ("yo", "ayer")
        if char == "y" and index + 1 < len(lowered) and vowels[index + 1] and lowered[index + 1] != "y":
            vowels[index] = False
    nuclei: list[int] = []  # index of the first vowel of each vowel group
    previous_vowel = False
    for index, char in enumerate(lowered):
        if vowels[index] and not previous_vowel:
            nuclei.append(index)
        if char.isalpha():  # an apostrophe keeps the group open: "qu'est" is one syllable
            previous_vowel = vowels[index]
    if language == "en" and len(nuclei) > 1:
        nuclei = _drop_silent_e(lowered, nuclei)
    if not nuclei:
        return _split_without_vowels(word)
    # each syllable starts at the consonant right before its vowel group (or at the word's start for the first):
    # "pa-lab-ras" splits after a cluster's first consonant, which places the syllable's time well enough
    cuts = [0]
    for nucleus in nuclei[1:]:
        start = nucleus
        if start - 1 > cuts[-1] and not vowels[start - 1] and lowered[start - 1].isalpha():
            start -= 1
        cuts.append(max(start, cuts[-1] + 1))
    cuts.append(len(word))
    return [word[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=False)]


def _drop_silent_e(lowered: str, nuclei: list[int]) -> list[int]:
    letters = lowered.rstrip("'’.,;:!?\"”)")
    last = nuclei[-1]
    if last == len(letters) - 1 and letters[last] == "e" and not _is_vowel(letters[last - 1]):
        if not (letters.endswith("le") and len(letters) > 2 and not _is_vowel(letters[-3])):
            return nuclei[:-1]
    return nuclei


def _split_without_vowels(word: str) -> list[str]:
    abjad = [c for c in word if c.isalpha() and any(s in unicodedata.name(c, "") for s in ABJADS)]
    digits = [i for i, c in enumerate(word) if c.isdigit()]
    if len(abjad) > ABJAD_LETTERS_PER_SYLLABLE:
        count = -(-len(abjad) // ABJAD_LETTERS_PER_SYLLABLE)
    elif len(digits) > 1:
        count = len(digits)
    else:
        return [word]
    # cut the text into ``count`` runs of about the same number of characters
    size = len(word) / count
    cuts = sorted({round(i * size) for i in range(count)} | {len(word)})
    return [word[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=False)]


def count(word: str, language: str | None = None) -> int:
    return len(split(word, language))
