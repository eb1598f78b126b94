"""Pure-Python golden models and protocol encoders/decoders: the one definition of each
protocol, shared by the gateware tests, the host and the venue simulator."""
