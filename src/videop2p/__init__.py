"""videop2p: text-driven editing of real videos with Video-P2P (CVPR 2024)."""

__version__ = "0.1.0"
