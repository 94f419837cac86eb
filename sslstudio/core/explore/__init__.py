"""What a trained run is used for inside the studio: features, neighbours, maps, classifiers."""
