"""Our generator's layout (the jik876 key names), shared by every toolkit reader in this folder.

- `expected_layers(config)`: the layers, their weight shapes and biases, of the generator `HiFiGAN(config)`
  builds (the config's options included: conv_pre/conv_post kernel sizes, bias-free convs);
- `rename_weight_norm(key)`: torch >= 2.1 weight-norm names (`parametrizations.weight.original0/1`) ->
  `weight_g`/`weight_v`;
- `block_type(sd, where)` and `infer_architecture(sd, where)`: what the keys and shapes say (block type,
  channels, kernel sizes, convs per block), never what a toolkit's config claims;
- `check_generator_keys(sd, config, where)`: the strict check, one CheckpointError listing every missing,
  unexpected and mis-shaped key;
- `config_field`, `config_mismatch`: reading a toolkit config's generator fields, and the error when one
  contradicts the weights.

Every function that names keys in an error takes `name` (a key in our spelling -> the toolkit's spelling), so
messages show keys as the file spells them; the default shows our spelling.
"""
from ...generator_options import option
from ..files import CheckpointError

PARAM_NAMES = ("weight_g", "weight_v", "weight", "bias")
_PARAMETRIZATION = {".parametrizations.weight.original0": ".weight_g",
                    ".parametrizations.weight.original1": ".weight_v"}


def _same(key):
    return key


def rename_weight_norm(key):
    """`X.parametrizations.weight.original0/1` (torch >= 2.1 weight norm) -> `X.weight_g/weight_v`."""
    for old, new in _PARAMETRIZATION.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def conv_weight(sd, base):
    """The weight (or weight_v, same shape) of conv `base`, or None."""
    return sd.get(base + ".weight", sd.get(base + ".weight_v"))


def _indices(sd, prefix):
    """Sorted integers i of keys `prefix{i}.…`."""
    found = set()
    for key in sd:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def block_type(sd, where, name=_same):
    """"1" (convs1 + convs2) or "2" (convs) from the resblock keys; a toolkit config's own number is not trusted."""
    names = {k.split(".")[2] for k in sd if k.startswith("resblocks.") and k.count(".") >= 3}
    if {"convs1", "convs2"} & names and "convs" in names:
        raise CheckpointError(f"{where}: resblock keys mix ResBlock1 (convs1/convs2) and ResBlock2 (convs) layouts; "
                              "expected one kind")
    if {"convs1", "convs2"} & names:
        return "1"
    if "convs" in names:
        return "2"
    raise CheckpointError(f"{where}: no {name('resblocks.N')}.* keys with convs1/convs2 or convs (found "
                          f"{sorted(names)[:5]})")


def infer_architecture(sd, where, name=_same):
    """What the weights say: num_mels, upsample_initial_channel, upsample_kernel_sizes, block type ("1":
    convs1+convs2, "2": convs), resblock_kernel_sizes, convs per block. Raises CheckpointError (naming `where`
    and the key, via `name`) when they cannot say."""
    pre = conv_weight(sd, "conv_pre")
    if pre is None or pre.dim() != 3:
        raise CheckpointError(f"{where}: missing key {name('conv_pre.weight')} (or weight_g/weight_v): "
                              "not a HiFi-GAN generator")
    stages = _indices(sd, "ups.")
    if not stages or stages != list(range(len(stages))):
        raise CheckpointError(f"{where}: expected upsampling layers {name('ups.0')}, {name('ups.1')}, …; "
                              f"found indices {stages}")
    ups_k = []
    for i in stages:
        w = conv_weight(sd, f"ups.{i}")
        if w is None or w.dim() != 3:
            raise CheckpointError(f"{where}: missing key {name(f'ups.{i}.weight')} (or weight_g/weight_v)")
        ups_k.append(int(w.shape[2]))
    kind = block_type(sd, where, name)
    blocks = _indices(sd, "resblocks.")
    if not blocks or len(blocks) % len(stages) or blocks != list(range(len(blocks))):
        raise CheckpointError(f"{where}: expected {name('resblocks.N')} for N = 0 … (a multiple of the "
                              f"{len(stages)} upsampling stages), found indices {blocks}")
    first = "convs1" if kind == "1" else "convs"
    kernels, n_convs = [], []
    for j in range(len(blocks) // len(stages)):
        w = conv_weight(sd, f"resblocks.{j}.{first}.0")
        if w is None or w.dim() != 3:
            raise CheckpointError(f"{where}: missing key {name(f'resblocks.{j}.{first}.0.weight')}")
        kernels.append(int(w.shape[2]))
        n_convs.append(len(_indices(sd, f"resblocks.{j}.{first}.")))
    return {"num_mels": int(pre.shape[1]), "upsample_initial_channel": int(pre.shape[0]),
            "conv_pre_kernel": int(pre.shape[2]), "upsample_kernel_sizes": ups_k, "resblock": kind,
            "resblock_kernel_sizes": kernels, "convs_per_block": n_convs}


def expected_layers(config):
    """{layer name: (weight shape, transposed, has bias)} of the generator `HiFiGAN(config)` builds, in order."""
    uic, rates = config["upsample_initial_channel"], config["upsample_rates"]
    layers = {"conv_pre": ((uic, config["num_mels"], option(config, "conv_pre_kernel_size")), False,
                           option(config, "conv_pre_bias"))}
    for i, k in enumerate(config["upsample_kernel_sizes"]):
        layers[f"ups.{i}"] = ((uic // 2 ** i, uic // 2 ** (i + 1), k), True, option(config, "upsample_bias"))
    nk = len(config["resblock_kernel_sizes"])
    lists = ("convs1", "convs2") if config["resblock"] == "1" else ("convs",)
    for i in range(len(rates)):
        ch = uic // 2 ** (i + 1)
        for j, (k, dils) in enumerate(zip(config["resblock_kernel_sizes"], config["resblock_dilation_sizes"])):
            for conv in lists:
                for m in range(len(dils)):
                    layers[f"resblocks.{i * nk + j}.{conv}.{m}"] = ((ch, ch, k), False, option(config, "resblock_bias"))
    layers["conv_post"] = ((1, uic // 2 ** len(rates), option(config, "conv_post_kernel_size")), False,
                           option(config, "conv_post_bias"))
    return layers


def check_generator_keys(sd, config, where, name=_same):
    """Strict check of a state dict in our keys against `config`: every layer has a bias where the config
    says so (and none elsewhere) and either a plain `weight` or both `weight_g` and `weight_v`, of the
    config's shapes; nothing else. One CheckpointError lists every missing key (in layer order), unexpected
    key and shape mismatch (keys spelled via `name`)."""
    layers = expected_layers(config)
    params, unexpected, missing, shapes = {}, [], [], []
    for key in sd:
        base, _, param = key.rpartition(".")
        if base in layers and param in PARAM_NAMES and (param != "bias" or layers[base][2]):
            params.setdefault(base, set()).add(param)
        else:
            unexpected.append(name(key))
    for base, (shape, transposed, bias) in layers.items():
        has = params.get(base, set())
        want = {"bias": (shape[1] if transposed else shape[0],)} if bias else {}
        if "weight" in has and not has & {"weight_g", "weight_v"}:
            want["weight"] = shape
        else:  # weight_g: dim 0 is the out channels, the in channels of a transposed conv
            want.update(weight_g=(shape[0], 1, 1), weight_v=shape)
            if "weight" in has:
                unexpected.append(name(f"{base}.weight") + " (alongside weight_g/weight_v)")
        for param, wanted in want.items():
            key = f"{base}.{param}"
            if param not in has:
                missing.append(name(key))
            elif tuple(sd[key].shape) != wanted:
                shapes.append(f"{name(key)}: file {tuple(sd[key].shape)} vs config {wanted}")
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(sorted(unexpected))}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
    if problems:
        raise CheckpointError(f"{where}: the generator weights do not match the config (resblock {config['resblock']}, "
                              f"upsample_initial_channel {config['upsample_initial_channel']}, upsample_rates "
                              f"{config['upsample_rates']}, resblock_kernel_sizes {config['resblock_kernel_sizes']}):"
                              "\n  " + "\n  ".join(problems))


def config_mismatch(where, field, claimed, found):
    """The error for a toolkit config field that contradicts what the weights say."""
    return CheckpointError(f"{where}: config field {field} = {claimed!r} contradicts the weights, which say {found!r}")


def config_field(section, key, where, kind=None):
    """`section[key]` of a toolkit's generator config, checked to be an "int", a list of "ints" or a list of
    "int_lists" (returned as lists); CheckpointError when absent or of another kind."""
    if key not in section or section[key] is None:
        raise CheckpointError(f"{where}: generator config has no {key!r} (found {sorted(section)})")
    value = section[key]
    if kind == "ints" and not (isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value)):
        raise CheckpointError(f"{where}: generator {key!r} should be a list of integers, got {value!r}")
    if kind == "int_lists" and not (isinstance(value, (list, tuple)) and all(
            isinstance(v, (list, tuple)) and all(isinstance(d, int) for d in v) for v in value)):
        raise CheckpointError(f"{where}: generator {key!r} should be a list of integer lists, got {value!r}")
    if kind == "int" and not isinstance(value, int):
        raise CheckpointError(f"{where}: generator {key!r} should be an integer, got {value!r}")
    return [list(v) for v in value] if kind == "int_lists" else list(value) if kind == "ints" else value
