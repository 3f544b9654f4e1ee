"""Readers for HiFi-GAN generators saved by other toolkits (issue 14). One module per toolkit, each with
the same two functions and nothing run from the files (weights-only torch.load or safetensors):

- huggingface.py: transformers `SpeechT5HifiGan` / `FastSpeech2ConformerHifiGan` folders
  (config.json + model.safetensors or pytorch_model.bin).
- coqui.py: Coqui TTS GAN vocoder checkpoints (`model_g.` keys, or the legacy unprefixed layout),
  config from the checkpoint or the config.json (with `//` comments) beside it.
- nemo.py, speechbrain.py: NeMo `.nemo` archives and SpeechBrain `generator.ckpt` (+ hyperparams.yaml;
  its generator reflect-pads: config `padding_mode: "reflect"`).
- parallel_wavegan.py: ParallelWaveGAN `checkpoint-*steps.pkl` (+ config.yml, stats.npy/h5) and ESPnet joint
  text2wav `*.pth` (+ config.yaml); odd upsample scales carry PWG's paddings (config `upsample_paddings`,
  `upsample_output_paddings`).
- layout.py: no reader; our generator's layout that every reader checks against: expected keys and shapes
  from a config, weight-norm name normalisation, the architecture inferred from keys and shapes, and the
  strict key check (one CheckpointError listing missing, unexpected and mis-shaped keys). The readers
  import only it, never each other.

Common interface:
    detect(path) -> bool
        True when `path` has the toolkit's on-disk structure (decided from contents, not the extension).
    read(path, map_location="cpu") -> (state_dict, config, features)
        state_dict: the generator's tensors under jik876 key names (`conv_pre`, `ups.{i}`,
        `resblocks.{n}.convs1/convs2/convs.{m}`, `conv_post`), weight norm as stored
        (`weight_g`/`weight_v`, or plain `weight`), as `read_generator_checkpoint` returns it;
        config: a dict `HiFiGAN(config)` accepts (architecture from the weights' shapes and keys,
        strides and dilations from the toolkit's config);
        features: the input features the toolkit's model was trained on, in one schema for every toolkit
        (the table is in vocoder_ext/features.py, whose `mel_spectrogram` computes them; each module says
        where its values come from).
        Anything our generator math cannot reproduce exactly raises CheckpointError naming the file and
        the key or config field.
"""
