"""vswitch: an Open vSwitch-class software switch (see DESIGN.md)."""
__version__ = "0.1.0"
