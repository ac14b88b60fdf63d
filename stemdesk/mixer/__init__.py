"""The remix as data and as sound: the mix (gains, pans, mutes, effects, automation), pedalboard effects, VST3
inserts, the block renderer and MIDI control."""
