"""From recordings to windows: window arithmetic, the window store, splits, normalisation, damage,
read-ahead."""
