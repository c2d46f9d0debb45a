"""reducer"""
