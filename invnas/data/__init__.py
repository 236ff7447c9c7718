"""invnas.data"""
