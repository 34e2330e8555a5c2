"""Every model of the book; ``base`` holds the contracts, the one ``recommend`` and the one Keras
training loop they share."""
