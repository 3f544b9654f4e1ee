"""Training entry points (python -m train.hifigan), run from the repository root.

The training loop arrives with its own issue; the model, discriminators, losses and mel front end
it uses are in vocoder_ext already.
"""
