// Lifecycle, flags with environment fallbacks, logging, metrics and /ready shared by every executable.
