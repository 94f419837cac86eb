"""Step 7, Export: the page and its parts."""
