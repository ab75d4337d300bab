"""batchplan: Terraform for Scale AI batches."""

from __future__ import annotations

__version__ = "0.1.0"
