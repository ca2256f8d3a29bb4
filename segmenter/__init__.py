"""The segmenter: event schema, stream processor, features, segments, lists, archive."""
