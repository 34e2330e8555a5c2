"""What the book itself needs: recorded metrics (``results``), ``make full`` (``execute``) and small
display helpers (``display``)."""
