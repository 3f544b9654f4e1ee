"""What the Triton tests share: counting kernel launches, to prove the Triton code ran."""


class CountLaunches:
    """Stands in for a kernel object: records each `kernel[grid](...)` launch's grid, then really launches."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.grids = []

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            self.grids.append(grid(kwargs) if callable(grid) else grid)
            return launch(*args, **kwargs)
        return run


def count_launches(monkeypatch, module):
    """{"conv", "grad_weight"}: counters of the module's two kernels (the launchers look them up at call time)."""
    counters = {"conv": CountLaunches(module.conv_kernel), "grad_weight": CountLaunches(module.grad_weight_kernel)}
    monkeypatch.setattr(module, "conv_kernel", counters["conv"])
    monkeypatch.setattr(module, "grad_weight_kernel", counters["grad_weight"])
    return counters
