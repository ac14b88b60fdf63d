"""MIDI from stems: a pitched stem's notes with Spotify's Basic Pitch (`pitched`; its ONNX network run in torch,
`network`, installed from its wheel by `model`), a drums stem's hits as General MIDI drum notes (`drums`), the song's
tempo and key read from the notes and Standard MIDI Files written (`smf`), and a folder of stems made into a file per
stem and one with every track (`stems`)."""
