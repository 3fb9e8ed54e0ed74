"""Process engine: a state machine over one form's records, with human tasks and rule-decided
steps."""
from __future__ import annotations
