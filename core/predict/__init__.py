"""From a drawing or a file to an answer: preprocess, inference, ensembles, explanations, the drawn set."""
