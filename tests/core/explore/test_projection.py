import numpy as np

from sslstudio.core.explore import projection


def test_pca_finds_the_spread_direction_and_is_stable():
    rng = np.random.default_rng(0)
    x = np.zeros((300, 8), np.float32)
    x[:, 0] = rng.normal(size=300) * 5
    x[:, 1] = rng.normal(size=300)
    x[:, 2:] = 0.01 * rng.normal(size=(300, 6))
    a = projection.pca_2d(x)
    assert a.shape == (300, 2)
    assert abs(np.corrcoef(a[:, 0], x[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(a[:, 1], x[:, 1])[0, 1]) > 0.99
    np.testing.assert_allclose(projection.pca_2d(x), a, atol=1e-4)
    assert projection.pca_2d(x[:2]).shape == (2, 2) and projection.pca_2d(x[:0]).shape == (0, 2)


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.eye(4, 16, dtype=np.float32)
    y = np.repeat(np.arange(4), 25)
    x = centres[y] + 0.05 * rng.normal(size=(100, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = projection.kmeans_labels(x, 4)
    # each true cluster maps to one found cluster
    assert all(len(set(labels[y == c].tolist())) == 1 for c in range(4))
    assert len(set(labels.tolist())) == 4
    assert projection.kmeans_labels(x[:3], 10).max() <= 2
