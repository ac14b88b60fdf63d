"""The mask-network core: STFT → estimator → masks → iSTFT, a streaming chunker, and the null rule.

Torch and numpy only: no files, no Qt, no global state.
"""
