import pytest
import torch
import torch.nn.functional as F

from sslstudio.core.maths.clustering import spherical_kmeans


def test_kmeans_recovers_well_separated_clusters():
    torch.manual_seed(0)
    centres = torch.eye(4, 16)  # four orthogonal directions
    truth = torch.arange(4).repeat_interleave(50)
    x = F.normalize(centres[truth] + 0.1 * torch.randn(200, 16), dim=1)
    centroids, labels = spherical_kmeans(
        x, 4, iterations=10, generator=torch.Generator().manual_seed(1)
    )
    # the same partition, up to the names of the clusters
    mapping = {int(t): int(labels[truth == t].mode().values) for t in range(4)}
    assert sorted(mapping.values()) == [0, 1, 2, 3]
    assert all((labels[truth == t] == mapping[t]).all() for t in range(4))
    assert torch.allclose(centroids.norm(dim=1), torch.ones(4), atol=1e-5)
    assert (centroids[[mapping[t] for t in range(4)]] @ centres.T).diagonal().min() > 0.95


def test_kmeans_is_reproducible_from_its_generator_and_refuses_bad_k():
    x = F.normalize(torch.randn(30, 8), dim=1)
    a = spherical_kmeans(x, 5, generator=torch.Generator().manual_seed(3))[1]
    b = spherical_kmeans(x, 5, generator=torch.Generator().manual_seed(3))[1]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="k must be"):
        spherical_kmeans(x, 31)
