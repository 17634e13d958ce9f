"""A scikit-learn estimator around scratchcnn's networks: ``ConvNetClassifier`` (``pip install 'scratchcnn[sklearn]'``).

Rows of X are images flattened row by row, as scikit-learn passes them: (n_samples, n_features).
Only this module imports scikit-learn; the rest of scratchcnn never does.

    from scratchcnn.sklearn import ConvNetClassifier
    clf = ConvNetClassifier(random_state=0).fit(X_train, y_train)   # X: (N, 64) for 8×8 images
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)
    ConvNetClassifier(arch="lenet")                                  # images of at least 12×12
    ConvNetClassifier(layers="conv:8x3:same,relu,pool:max,flatten,dense")
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from scratchcnn import options
from scratchcnn.errors import ConfigError
from scratchcnn.nn import layers as equations
from scratchcnn.nn.network import Network, build_network, from_spec
from scratchcnn.nn.spec import parse
from scratchcnn.nn.stack_layers import Layer
from scratchcnn.options import ARCH_DEFAULTS, NETWORK, SEED_FAMILY, TRAINING, NetworkOptions, TrainOptions
from scratchcnn.train import sgd as train

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6: the same checks were a private method of BaseEstimator

    def validate_data(_estimator: Any, /, X: Any = "no_validation", y: Any = "no_validation", **kwargs: Any) -> Any:
        return _estimator._validate_data(X, y, **kwargs)


__all__ = ["ConvNetClassifier", "infer_image_shape"]

# Chosen by measurement (test accuracy over random_state 0–19, train/test split 75/25; see the class
# docstring): digits 0.952 mean, iris 0.996, breast cancer 0.900, and scikit-learn's 3-blob check problem
# ≥ 0.877 on the training set (its check wants > 0.83). Each of those fits takes well under a second.
BIAS = True
LEARNING_RATE = 0.02
EPOCHS = 30
# The seed network's training here; the other presets' are their own (options.ARCH_DEFAULTS).
SEED_TRAINING = {"learning_rate": LEARNING_RATE, "epochs": EPOCHS}
FAMILY_DEFAULTS = {**{name: getattr(NETWORK, name) for name in SEED_FAMILY}, "bias": BIAS}
FAMILY_ARCHS = ("seed", "wide")  # the presets the seed family's parameters shape


def infer_image_shape(n_features: int) -> tuple[int, int]:
    """The square image (s, s) that n_features pixels are laid out on: the smallest s ≥ 2 with s² ≥ n_features.

    When n_features is not a perfect square, the features fill the image row by row and the remaining
    s² − n_features pixels are 0.
    """
    if n_features < 1:
        raise ValueError(f"need at least 1 feature, got {n_features}")
    side = max(2, math.isqrt(n_features - 1) + 1)  # ⌈√n⌉, at least 2
    return side, side


class ConvNetClassifier(ClassifierMixin, BaseEstimator):
    """scratchcnn's convolutional networks as a scikit-learn classifier.

    Each row of X is one grayscale image, flattened row by row: n_features = H·W.

    Parameters
    ----------
    arch
        A preset network (``scratchcnn.nn.spec.PRESETS``): ``"seed"`` (the write-up's: one convolution,
        2×2 pooling, a dense layer, shaped by the seed family's parameters below), ``"wide"`` (the seed
        family with more and larger filters, ReLU and max pooling) or ``"lenet"`` (two convolutions and
        two hidden dense layers; it needs images of at least 12×12, e.g. MNIST's 784 features).
    layers
        Any network instead of a preset: a spec string (grammar: ``scratchcnn.nn.spec``), e.g.
        ``"conv:8x3:same,relu,pool:max,flatten,dense"``, or a list of layer objects from
        ``scratchcnn.nn.stack_layers``, e.g. ``[Conv(8, 3, "same", bias=True), ReLU(), Pool("max"), Flatten(),
        Dense(bias=True)]`` (copied by each fit, never changed). The last layer is the dense layer of the class
        scores: a bare ``dense``, one output per class. Leave ``arch`` at "seed" when you give ``layers``.
    filters, kernel_size, pool, activation, bias
        The seed family's architecture, as for ``scratchcnn.ConvNet``: K filters of k×k, pooling
        ``"decimate"``, ``"max"`` or ``"avg"``, activation ``"none"`` or ``"relu"``, a bias b in the dense
        layer, A = W Z + b. They shape arch "seed" and "wide" only: with "wide", each one left at its default
        takes wide's value; "lenet" and ``layers`` say every layer themselves, so with them a value other
        than the default is refused. ``bias`` is on by default here (``ConvNet`` and the command line
        leave it off, as the write-up does): without it the scores are positively homogeneous in the
        scaled pixels (A(c·x) = c·A(x), c > 0), so every ray from the training minimum gets one class,
        which caps, e.g., scikit-learn's 3-blob check problem at ~0.80 training accuracy. On images
        it changes nothing measurable (digits: 0.952 mean test accuracy over 20 seeds, with or without).
    learning_rate, epochs, optimiser, schedule
        Training, as for ``scratchcnn.train.fit``; no records are held out for validation (use
        scikit-learn's cross-validation). None (the default) takes the network's own: for "seed" and
        ``layers`` 0.02 for 30 epochs of plain SGD ("sgd", "constant"); for "wide" and "lenet" those of
        the command line (``scratchcnn.options.ARCH_DEFAULTS``, e.g. lenet's momentum, weight decay, cosine).
        ``training_`` holds what a fit used. The seed's values were
        measured on small problems: test accuracy (mean over 20 seeds) 0.95 on the 8×8 digits of
        ``sklearn.datasets.load_digits``, 0.99 on iris, 0.90 on breast cancer, each fit in well under
        a second. On 28×28 MNIST (10 000 training images) they reach 0.89–0.90 test accuracy over
        seeds 0–4 in about a second; the command line's smaller steps (0.0005, 20 epochs) reach 0.91.
        The other networks with their defaults (times on a busy 2-core machine): "wide" on the digits 0.97
        (random_state 0–2, ~2 s each); ``layers="conv:8x3:same,relu,pool:max,flatten,dense"`` 0.98 (0–1,
        ~35 s: any network but the seed family's trains on the NumPy path); "lenet" on 2 000 MNIST rows
        0.94 on 2 000 test rows (random_state 0, ~10 minutes).
    batch_size
        Records per update; 1 (the default, as for ``ConvNet`` and the command line) is the write-up's
        one-record-at-a-time SGD. Left at 1, a preset with a batch size of its own (lenet) takes that.
    momentum, weight_decay
        μ of the "momentum" and "nesterov" optimisers, and λ, which adds λθ to every gradient.
    image_shape
        (H, W) with H·W = n_features and H, W ≥ 2; or None: a square image s×s when n_features = s²
        with s ≥ 2, otherwise the features are laid out row by row on the smallest square image with
        side ≥ 2 that holds them, the remaining pixels 0 (e.g. 5 features → 3×3, 1 feature → 2×2).
    random_state
        None, an int or a ``numpy.random.RandomState``: sets the initial weights and the order of the
        training records. An int gives the same model, bit for bit, on every fit.

    Parameters are checked by ``fit``: a bad value, arch and layers together, a seed-family parameter
    with "lenet" or ``layers``, a malformed spec or one whose shapes do not fit the images is a
    ``scratchcnn.errors.ConfigError`` (a ValueError) of one line naming the parameter or the layer.

    Pixel scaling: the network takes pixels in [0, 1]. ``fit`` learns the smallest and largest value
    over all of the training X (``pixel_min_``, ``pixel_max_``) and maps that range onto [0, 1] for every
    feature alike (pixels 0..255 thus become x / 255); ``predict`` applies the same map and clips to [0, 1].
    Features on very different scales (tabular data, e.g. ``load_wine``) want a per-feature scaler in
    front: ``make_pipeline(StandardScaler(), ConvNetClassifier())`` (wine: 0.98 test accuracy, 0.69 without).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any sortable labels: ints, strings, ...), in the order of predict_proba's columns.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when X had string column names (e.g. a pandas DataFrame)
    image_shape_ : (H, W)
        The image each row is laid out on.
    pixel_min_, pixel_max_ : float
        The range of the training X mapped onto [0, 1].
    network_ : scratchcnn.ConvNet or scratchcnn.nn.stack.Stack
        The trained network, with ``classes=len(classes_)``; its class j is ``classes_[j]``. The seed
        family's networks (and specs of their shape, for 10 classes) are ConvNets, any other a Stack.
    training_ : scratchcnn.options.TrainOptions
        The training options the fit used, the network's defaults filled in (its seed: the record order's).
    history_ : scratchcnn.train.History
        Training accuracy and loss after each epoch.
    n_iter_ : int
        The number of epochs run (fewer than ``training_.epochs`` if the loss became NaN or infinite, which
        also issues a ConvergenceWarning: lower the learning rate).
    """

    def __init__(
        self,
        *,
        arch: str = NETWORK.arch,
        layers: str | Sequence[Layer] | None = NETWORK.layers,
        filters: int = NETWORK.filters,
        kernel_size: int = NETWORK.kernel_size,
        pool: str = NETWORK.pool,
        activation: str = NETWORK.activation,
        bias: bool = BIAS,
        learning_rate: float | None = None,
        epochs: int | None = None,
        batch_size: int = TRAINING.batch_size,
        optimiser: str | None = None,
        momentum: float = TRAINING.momentum,
        weight_decay: float = TRAINING.weight_decay,
        schedule: str | None = None,
        image_shape: tuple[int, int] | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.arch = arch
        self.layers = layers
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool = pool
        self.activation = activation
        self.bias = bias
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimiser = optimiser
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.image_shape = image_shape
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> ConvNetClassifier:
        """Train a new network on X: (n_samples, n_features) and labels y: (n_samples,). Returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes to train, but y has 1 class: {classes[0]!r}"
            )
        image_shape = self._image_shape(X.shape[1])
        blueprint, training = self._architecture(), self._training()  # checked before random_state is drawn from
        scaling = (float(X.min()), float(X.max()))
        random_state = check_random_state(self.random_state)
        init_seed, order_seed = (int(s) for s in random_state.randint(2**31, size=2))
        training = replace(training, seed=order_seed)
        network = _build(blueprint, image_shape, len(classes), init_seed)
        history = train.fit(network, _to_images(X, image_shape, *scaling, network.dtype), codes.reshape(-1),
                            **asdict(training))
        if history.stopped:
            done = len(history.epochs)
            warnings.warn(
                f"the loss became NaN or infinite in epoch {done + 1}: learning_rate={training.learning_rate!r} is "
                f"too high; kept the parameters after epoch {done}{' (the initial ones)' if done == 0 else ''}. "
                "Try a smaller learning_rate.",
                ConvergenceWarning, stacklevel=2,
            )
        # Set only once training succeeded: a fit that raises leaves no half-fitted estimator behind.
        self.classes_ = classes
        self.image_shape_ = image_shape
        self.pixel_min_, self.pixel_max_ = scaling
        self.network_ = network
        self.training_ = training
        self.history_ = history
        self.n_iter_ = len(history.epochs)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: (n_samples, n_classes), columns in the order of ``classes_``, rows summing to 1."""
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The natural logarithms of predict_proba, computed stably from the class scores."""
        return equations.log_softmax(self._scores(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row: (n_samples,), labels from ``classes_``."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once a fit has finished (scikit-learn's validation sets ``n_features_in_`` earlier)."""
        return hasattr(self, "network_")

    # ---- helpers -----------------------------------------------------------------------------

    def _scores(self, X: Any) -> np.ndarray:
        """The network's class scores A, in float64: (n_samples, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        images = _to_images(X, self.image_shape_, self.pixel_min_, self.pixel_max_, self.network_.dtype)
        images = self.network_.check_images(images)
        return self.network_.scores(images).astype(np.float64)

    def _image_shape(self, n_features: int) -> tuple[int, int]:
        """(H, W) for rows of n_features: ``image_shape`` checked against n_features, or inferred."""
        if self.image_shape is None:
            return infer_image_shape(n_features)
        shape = self.image_shape
        H, W = options.input_shape(shape, "image_shape")  # ConfigError is a ValueError, as scikit-learn expects
        if n_features != H * W:
            raise ValueError(f"image_shape {shape!r} holds {H * W} pixels, but X has {n_features} features")
        return H, W

    def _architecture(self) -> NetworkOptions | list[Layer]:
        """What fit builds: a preset's or a spec's options, or a copy of the given layers; ConfigError if amiss."""
        arch = options.choice("arch", self.arch, options.ARCHS)
        if self.layers is not None and arch != NETWORK.arch:
            raise ConfigError(f"give arch or layers, not both: layers is a whole network by itself (got arch={arch!r})")
        whole = "layers" if self.layers is not None else None if arch in FAMILY_ARCHS else f"arch={arch!r}"
        given = [name for name in SEED_FAMILY if not _is_default(getattr(self, name), FAMILY_DEFAULTS[name])]
        if whole and given:  # what options._check_architecture refuses on the command line
            name = given[0]
            raise ConfigError(f"{name}={getattr(self, name)!r} shapes the seed and wide networks only, and {whole} "
                              f"says every layer itself: leave {name} at {FAMILY_DEFAULTS[name]!r}"
                              + ("" if self.layers is not None else ", or write the layers you want with layers=..."))
        if self.layers is not None and not isinstance(self.layers, str):
            return _copied_layers(self.layers)
        # Left at its default, a seed-family parameter takes the preset's value (wide's 32 filters, ...).
        family = {name: getattr(self, name) if name in given else ARCH_DEFAULTS[arch].get(name, getattr(self, name))
                  for name in SEED_FAMILY}
        network = NetworkOptions(arch=arch, layers=self.layers, **family)
        if self.layers is not None:
            parse(self.layers)  # a malformed layer now; whether the shapes fit, once the images are known
        return network

    def _training(self) -> TrainOptions:
        """fit's options: each None, and batch_size left at 1, takes the network's own (see the class docstring)."""
        preset = {**SEED_TRAINING, **ARCH_DEFAULTS.get(NETWORK.arch if self.layers is not None else self.arch, {})}
        chosen = {"learning_rate": self.learning_rate, "epochs": self.epochs, "optimiser": self.optimiser,
                  "schedule": self.schedule}
        values = {name: preset.get(name, getattr(TRAINING, name)) if value is None else value
                  for name, value in chosen.items()}
        batch_size = preset.get("batch_size", self.batch_size) if _is_default(self.batch_size, TRAINING.batch_size) \
            else self.batch_size
        return TrainOptions(**values, batch_size=batch_size, momentum=self.momentum, weight_decay=self.weight_decay,
                            validation_size=0)


def _is_default(value: Any, default: Any) -> bool:
    """value is a parameter's default (a plain value equal to it: no array comparisons)."""
    return isinstance(value, (int, str, np.integer, np.bool_)) and value == default


def _copied_layers(layers: Any) -> list[Layer]:
    """A copy of a list of layer objects (a Stack sets widths and parameters on its layers: not on the user's)."""
    if not isinstance(layers, (list, tuple)) or not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise ConfigError("layers must be a spec string like conv:8x3,relu,pool:max,flatten,dense or a list of "
                          f"layers from scratchcnn.nn.stack_layers, got {layers!r}")
    return copy.deepcopy(list(layers))


def _build(blueprint: NetworkOptions | list[Layer], image_shape: tuple[int, int], classes: int, seed: int) -> Network:
    """The network of ``_architecture``'s blueprint for images (H, W) and C classes; ConfigError if shapes clash."""
    try:
        if isinstance(blueprint, NetworkOptions):
            return build_network(blueprint, input_shape=image_shape, classes=classes, seed=seed)
        return from_spec(blueprint, input_shape=image_shape, classes=classes, seed=seed)
    except ConfigError as error:  # every other value was checked before: what is left is the layers' shapes
        raise ConfigError(f"{error} (for the rows of X as {image_shape[0]}×{image_shape[1]} images)") from None


def _to_images(X: np.ndarray, shape: tuple[int, int], lo: float, hi: float, dtype: str) -> np.ndarray:
    """Validated rows X (float64) as images (N, H, W) in [0, 1]: (X − lo) / (hi − lo), clipped, zero-padded."""
    H, W = shape
    half_span = hi / 2 - lo / 2  # each term halved: no difference overflows, even for lo, hi = ∓1e308
    if half_span > 0:
        scaled = X / 2
        scaled -= lo / 2
        scaled /= half_span
        np.clip(scaled, 0.0, 1.0, out=scaled)
    else:  # a constant training X: every pixel 0
        scaled = np.zeros_like(X)
    images = np.zeros((len(X), H * W), dtype)
    images[:, : X.shape[1]] = scaled
    return images.reshape(-1, H, W)
