"""The data sets of the book: Online Retail (``retail``), MovieLens (``movielens``), and synthetic
tables in their schemas for the tests (``synthetic``); ``download`` is what they share."""
