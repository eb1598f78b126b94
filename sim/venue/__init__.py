"""The venue simulator: matching engine, ITCH 5.0 / MoldUDP64 publisher with
retransmission, OUCH 5.0 over SoupBinTCP order entry, synthetic order flow."""
