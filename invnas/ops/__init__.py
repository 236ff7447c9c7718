"""invnas.ops"""
