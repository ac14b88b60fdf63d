"""Karaoke: the words of a song on screen, in time, over its instrumental.

The lyrics a user gives (`lyrics`: plain text, LRC or ASS) are placed word by word on the sung lead vocal
(`align`), then written in the formats karaoke players read (`formats`: enhanced LRC, ASS, UltraStar; `cdg`: CD+G with
its MP3; `video`: an MP4 with the words wiping in time) beside the karaoke mix. No word of the text is ever invented or
dropped: every word is placed, in order, on the line the text has it on.
"""
