"""The delivery engine: sends and their queue, message building, transports, rate limits, DKIM, workers."""
