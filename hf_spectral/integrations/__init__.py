"""Adapters to the Hugging Face ecosystem: Trainer (names, optim_args, factory, callback) and the patches."""
