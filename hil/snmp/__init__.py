"""SNMP agent of an LTE router (MIB-II system/ifTable/ifXTable + vendor LTE signal OIDs), with traps.

See `hil.snmp.mib` for the OIDs and `hil.snmp.control` for the control commands.
"""
