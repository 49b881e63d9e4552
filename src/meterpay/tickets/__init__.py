"""Work orders (报修工单): an owner's repair request, or one staff file for them."""
