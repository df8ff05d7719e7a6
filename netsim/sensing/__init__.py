"""netsim.sensing"""
