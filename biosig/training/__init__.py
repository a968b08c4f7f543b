"""Training and pretraining: the Trainer, the run that feeds it, DDP, the random-kernel branch's
fit."""
