"""The shape of a CocoNet: what the header must say to rebuild the network."""

from __future__ import annotations

from dataclasses import dataclass

from .context import N_CONTEXT, N_WAVEFRONT_CONTEXT

MAX_LEVELS = 8
MAX_HIDDEN_LAYERS = 4
N_COLOURS = 3
ARM_OUTPUTS = 2  # Laplace mean and log2 scale
MIN_CONTEXT_TILE = 2
MAX_CONTEXT_TILE = 128


@dataclass(frozen=True)
class Architecture:
    """Sizes of the latent pyramid and of the two small networks.

    Attributes:
        n_levels: latent grids, full resolution down to 1/2**(n_levels-1).
        synth_hidden: hidden widths of the synthesis MLP (sampled latents ->
            RGB), ReLU after each.
        arm_hidden: hidden widths of the context model (context features
            -> Laplace mean and log2 scale).
        context_tile: None for format 1.0's checkerboard context (14
            features); otherwise format 2.0's wavefront context (21
            features) in tiles of (width, height) cells
            (`train.context.wavefront_context_features`).
        learned_upsampling: format 3.0: the coarse levels reach full
            resolution through 2x steps of learned filters
            (`upsampling`), on format 2.0's wavefront context.
    """

    n_levels: int
    synth_hidden: tuple[int, ...]
    arm_hidden: tuple[int, ...]
    context_tile: tuple[int, int] | None = None
    learned_upsampling: bool = False

    def __post_init__(self) -> None:
        if self.learned_upsampling and not self.context_tile:
            raise ValueError("learned upsampling (format 3.0) needs the wavefront context (a context_tile)")

    @property
    def format_major(self) -> int:
        """The `.coco` major version that can carry this architecture."""
        if self.learned_upsampling:
            return 3
        return 2 if self.context_tile else 1

    def n_context(self) -> int:
        """Context features per latent cell."""
        return N_WAVEFRONT_CONTEXT if self.context_tile else N_CONTEXT

    def synth_widths(self) -> list[int]:
        """Input, hidden and output widths of the synthesis MLP."""
        return [self.n_levels, *self.synth_hidden, N_COLOURS]

    def arm_widths(self) -> list[int]:
        """Input, hidden and output widths of the context model."""
        return [self.n_context(), *self.arm_hidden, ARM_OUTPUTS]

    def multiply_adds_per_pixel(self) -> int:
        """Synthesis multiply-adds per output pixel (the decoder's main cost)."""
        widths = self.synth_widths()
        return sum(a * b for a, b in zip(widths, widths[1:])) + 16 * self.n_levels
