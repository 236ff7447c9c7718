"""invnas.nn"""
