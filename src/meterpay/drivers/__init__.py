"""Sans-I/O meter protocol codecs: bytes in, typed frames out.

Nothing in this package opens a socket, reads a clock or touches the database:
the link layer (the DTU listener, an MQTT bridge) hands bytes to a stream decoder
and sends the bytes a request builder returns. Protocols: DL/T 645-2007 and -1997
(electricity), CJ/T 188-2004 (water), Modbus RTU and TCP (DIN-rail meters).
Meter models are data (``models/*.yaml``); adding one needs no code.
"""
