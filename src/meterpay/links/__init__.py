"""Transports that carry readings in and commands out: MQTT, DTU TCP, Modbus TCP.

Links parse what arrives, call one service of ``meterpay.metering`` and
acknowledge only what the service has committed; they hold no business rules.
"""
