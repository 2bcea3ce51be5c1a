"""Distributed shaping: which rank shapes which matrix, and the collectives that move updates there and back.

FSDP2 (DTensor, Shard(0)): each matrix's update is gathered to one owner rank (one all-to-all for all matrices of
a step), shaped there whole, and its rows are scattered back (a second all-to-all). DDP (replicated parameters):
each rank shapes the matrices it owns and one all-gather shares the results. Owners are chosen by estimated cost
(longest-processing-time first), identically on every rank.
"""

from .plan import assign_owners, matrix_cost
from .replicas import replicas_agree
from .sharding import ShardSpec, chunk_rows, shard_spec

__all__ = ["ShardSpec", "assign_owners", "chunk_rows", "matrix_cost", "replicas_agree", "shard_spec"]
