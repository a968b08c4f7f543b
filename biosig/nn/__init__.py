"""The network: the classifier, its layers, losses and augmentation."""
