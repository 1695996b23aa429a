"""Media input: discovery, probing, frame and audio decoding, sidecars, subtitles, tables."""
