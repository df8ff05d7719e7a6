"""netsim.comm"""
