"""Which language lyrics are written in, when nobody said: the aligner speaks them in that language.

`detect` knows the four languages the aligner speaks (Spanish, French, German, English). It counts the text's
common short words (articles, pronouns, prepositions; a word two of them share counts for neither) and
its letters that only one of them writes (ñ ¿ ¡ for Spanish, ß for German, œ ç è ê for French…), and returns the
language with the most, or None when nothing points anywhere (a text of numbers, another script, too few words).
"""

from __future__ import annotations

import re

LANGUAGES = ("es", "fr", "de", "en")
STOPWORDS = {
    "es": "el la los las del que y en un una por con para es no se mi tu yo te me lo como pero más muy esta este "
    "está son hay cuando porque sin sobre también eres estoy quiero todo nada",
    "fr": "le la les des du de et un une est je tu il elle nous vous ils pas que qui dans pour sur avec ce cette "
    "mais au aux ne se sa son mes tes mon ton moi toi suis c'est j'ai qu'il n'est plus comme",
    "de": "der die das und ist ich du er sie wir ihr nicht ein eine mit auf für von zu den dem im ist sich auch "
    "noch nur wie aber mein dein bin bist hat haben wenn was",
    "en": "the and you i to of in is it my me your that on for with be are this all love what we so but just "
    "don't i'm can will when like know",
}
LETTERS = {"es": "ñ¿¡áíóú", "fr": "œçèêëîôûùâæ", "de": "ßäöü", "en": ""}
# a word two languages share ("la", "que", "me") says nothing: only each language's own words count
_OWN = {
    language: set(words.split()) - {w for other in LANGUAGES if other != language for w in STOPWORDS[other].split()}
    for language, words in STOPWORDS.items()
}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def detect(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language among LANGUAGES, or None where its words say nothing."""
    words = [w.replace("’", "'") for w in _WORD.findall(text.lower())]
    if not words:
        return None
    score = {}
    for language in LANGUAGES:
        letters = LETTERS[language]
        score[language] = sum(w in _OWN[language] for w in words) + 0.5 * sum(c in letters for w in words for c in w)
    best = max(score, key=lambda k: score[k])
    return best if score[best] >= 2 else None
