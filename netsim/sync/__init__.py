"""netsim.sync"""
