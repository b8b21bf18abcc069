# %% [markdown]
# # Track a notebook's training into Digit Lab
#
# The classic MLP of *Deep Learning with Python* (chapter 2), unchanged except for one
# callback. Run it as a script (`PYTHONPATH=. .venv/bin/python docs/track_example.py` from the repo
# root: `core` must be importable, as it is in a notebook started there) or paste
# the cells into Jupyter. The run shows live on the dashboard's Runs page while it trains;
# afterwards it can be drawn on, compared and scored on the team's drawings like any run.
#
# The store and dataset come from DIGITLAB_DB / DIGITLAB_DATA (else runs.db and
# data/mnist.h5 at the repo root), or pass `db=` / `data=` to the callback.

# %% The data, as the tutorial has it: 60,000 training and 10,000 test digits, flattened to 784 values in [0, 1].
# Read from Digit Lab's copy (`python -m core ingest` made it) so this runs offline;
# `keras.datasets.mnist.load_data()` gives the same arrays.
import os

from core.data.dataset import load_dataset
from core.settings import data_path

mnist = load_dataset(data_path())
train_images, train_labels = mnist.x_train, mnist.y_train
test_images, test_labels = mnist.x_test, mnist.y_test
train_images = train_images.reshape((len(train_images), 28 * 28)).astype("float32") / 255
test_images = test_images.reshape((len(test_images), 28 * 28)).astype("float32") / 255

# %% The model, as the tutorial builds and compiles it.
from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential([
    layers.Dense(512, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="rmsprop",
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])

# %% Training: the tutorial's fit, plus the one line that tracks it into Digit Lab.
from core.track import DigitLabCallback

epochs = int(os.environ.get("DIGITLAB_EXAMPLE_EPOCHS", 5))  # the tests train 1 epoch on tiny data
model.fit(train_images, train_labels, epochs=epochs, batch_size=128,
          callbacks=[DigitLabCallback(name="mlp-512 from the tutorial", batch_size=128)])

# %% The tutorial's own check; Digit Lab has scored the model on the same test set already.
test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
print(f"test_acc: {test_acc:.4f}")
