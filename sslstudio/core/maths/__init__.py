"""Small algorithms on embeddings that several floors share: kNN, spherical k-means."""
