"""One module per training stage, each with one config dataclass and one `train_*` function."""
