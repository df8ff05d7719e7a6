"""netsim.sim"""
