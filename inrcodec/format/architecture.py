"""The shape of a CocoNet: what the header must say to rebuild the network."""

from __future__ import annotations

from dataclasses import dataclass

from .context import N_CONTEXT

MAX_LEVELS = 8
MAX_HIDDEN_LAYERS = 4
N_COLOURS = 3
ARM_OUTPUTS = 2  # Laplace mean and log2 scale


@dataclass(frozen=True)
class Architecture:
    """Sizes of the latent pyramid and of the two small networks.

    Attributes:
        n_levels: latent grids, full resolution down to 1/2**(n_levels-1).
        synth_hidden: hidden widths of the synthesis MLP (sampled latents ->
            RGB), ReLU after each.
        arm_hidden: hidden widths of the context model (14 context features
            -> Laplace mean and log2 scale).
    """

    n_levels: int
    synth_hidden: tuple[int, ...]
    arm_hidden: tuple[int, ...]

    def synth_widths(self) -> list[int]:
        """Input, hidden and output widths of the synthesis MLP."""
        return [self.n_levels, *self.synth_hidden, N_COLOURS]

    def arm_widths(self) -> list[int]:
        """Input, hidden and output widths of the context model."""
        return [N_CONTEXT, *self.arm_hidden, ARM_OUTPUTS]

    def multiply_adds_per_pixel(self) -> int:
        """Synthesis multiply-adds per output pixel (the decoder's main cost)."""
        widths = self.synth_widths()
        return sum(a * b for a, b in zip(widths, widths[1:])) + 16 * self.n_levels
