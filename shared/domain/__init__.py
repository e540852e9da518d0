"""The pure domain: validation, models, errors, cost math, the operation state machine and the
queue-message contract. Standard library only; nothing here performs I/O."""
