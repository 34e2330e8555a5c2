"""The tested machinery of the book "Recommender systems with TensorFlow".

Layers, lowest first; a module imports only from its own layer or those before it:
``settings`` -> ``datasets`` -> ``interactions``, ``features`` -> ``evaluation`` -> ``models`` ->
``book``. See the README's "Architecture" section.
"""
