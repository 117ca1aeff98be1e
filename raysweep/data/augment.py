"""Tensor-side augmentation, done on whole batches on the training device."""

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, pad: int = 4, generator=None, flip: bool = True) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and, with ``flip``, a horizontal flip, per example, batched."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # n,h,1
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # n,1,w
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if not flip:
        return out.contiguous()
    flipped = torch.rand(n, device=x.device, generator=generator) < 0.5
    return torch.where(flipped[:, None, None, None], out.flip(3), out).contiguous()


def random_crop(x: torch.Tensor, pad: int = 4, generator=None) -> torch.Tensor:
    """Random crop only: for digits (SVHN), which a mirror turns into other shapes."""
    return random_crop_flip(x, pad, generator, flip=False)


AUGMENTATIONS = {"none": None, "crop_flip": random_crop_flip, "crop": random_crop}
