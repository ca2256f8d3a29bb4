"""Per-shopper recommendations: features in, ranked and diversified items out.

``features`` decodes what Redis holds, ``ranking`` is the pure core (candidates, scores,
filters, diversity), ``fetch`` makes the two round trips, ``endpoint`` speaks HTTP.
"""
