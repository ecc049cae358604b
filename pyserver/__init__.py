"""pyserver"""
