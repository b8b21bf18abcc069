"""The Draw page: the canvas input side, predictions, the inside-the-model panel and the team's drawn set."""
