-- table.sort as gopher-lua (Nakama's Lua) runs it: Go's sort.Sort, a pattern-defeating quicksort.
--
-- Written from the algorithm of Go's sort package (insertion sort below 13 elements, heapsort fallback,
-- median-of-three / Tukey ninther pivots, partial insertion sort, pattern breaking with a xorshift seeded
-- by the length). It calls the comparator with the same pairs in the same order as Nakama does, so ties
-- and inconsistent comparators come out in Nakama's order. Indices here are 0-based like Go's; `t[i + 1]`.
local xorshift_others = ... -- host function: (length) -> the three "other" offsets breakPatterns uses

local raw_type, floor = type, math.floor

local function sort(t, comp)
  if raw_type(t) ~= "table" then
    error("bad argument #1 to sort (table expected, got " .. raw_type(t) .. ")", 2)
  end
  local less
  if comp ~= nil then
    if raw_type(comp) ~= "function" then
      error("bad argument #2 to sort (function expected, got " .. raw_type(comp) .. ")", 2)
    end
    less = function(i, j) return comp(t[i + 1], t[j + 1]) and true or false end
  else
    less = function(i, j) return t[i + 1] < t[j + 1] end
  end
  local function swap(i, j)
    t[i + 1], t[j + 1] = t[j + 1], t[i + 1]
  end

  local function insertion_sort(a, b)
    for i = a + 1, b - 1 do
      local j = i
      while j > a and less(j, j - 1) do
        swap(j, j - 1)
        j = j - 1
      end
    end
  end

  local function sift_down(lo, hi, first)
    local root = lo
    while true do
      local child = 2 * root + 1
      if child >= hi then return end
      if child + 1 < hi and less(first + child, first + child + 1) then child = child + 1 end
      if not less(first + root, first + child) then return end
      swap(first + root, first + child)
      root = child
    end
  end

  local function heap_sort(a, b)
    local first, lo, hi = a, 0, b - a
    for i = floor((hi - 1) / 2), 0, -1 do sift_down(i, hi, first) end
    for i = hi - 1, 0, -1 do
      swap(first, first + i)
      sift_down(lo, i, first)
    end
  end

  local swaps
  local function order2(a, b)
    if less(b, a) then
      swaps = swaps + 1
      return b, a
    end
    return a, b
  end
  local function median(a, b, c)
    a, b = order2(a, b)
    b, c = order2(b, c)
    a, b = order2(a, b)
    return b
  end
  local function median_adjacent(a)
    return median(a - 1, a, a + 1)
  end

  -- hints: 0 unknown, 1 increasing, 2 decreasing
  local function choose_pivot(a, b)
    local l = b - a
    swaps = 0
    local q = floor(l / 4)
    local i, j, k = a + q, a + q * 2, a + q * 3
    if l >= 8 then
      if l >= 50 then
        i = median_adjacent(i)
        j = median_adjacent(j)
        k = median_adjacent(k)
      end
      j = median(i, j, k)
    end
    if swaps == 0 then return j, 1 end
    if swaps == 12 then return j, 2 end
    return j, 0
  end

  local function reverse_range(a, b)
    local i, j = a, b - 1
    while i < j do
      swap(i, j)
      i, j = i + 1, j - 1
    end
  end

  local function partial_insertion_sort(a, b)
    local i = a + 1
    for _ = 1, 5 do
      while i < b and not less(i, i - 1) do i = i + 1 end
      if i == b then return true end
      if b - a < 50 then return false end
      swap(i, i - 1)
      if i - a >= 2 then
        for j = i - 1, 1, -1 do
          if not less(j, j - 1) then break end
          swap(j, j - 1)
        end
      end
      if b - i >= 2 then
        for j = i + 1, b - 1 do
          if not less(j, j - 1) then break end
          swap(j, j - 1)
        end
      end
    end
    return false
  end

  local function break_patterns(a, b)
    local length = b - a
    if length >= 8 then
      local others = xorshift_others(length)
      local idx = a + floor(length / 4) * 2 - 1
      for n = 1, 3 do
        swap(idx, a + others[n])
        idx = idx + 1
      end
    end
  end

  local function partition_equal(a, b, pivot)
    swap(a, pivot)
    local i, j = a + 1, b - 1
    while true do
      while i <= j and not less(a, i) do i = i + 1 end
      while i <= j and less(a, j) do j = j - 1 end
      if i > j then break end
      swap(i, j)
      i, j = i + 1, j - 1
    end
    return i
  end

  local function partition(a, b, pivot)
    swap(a, pivot)
    local i, j = a + 1, b - 1
    while i <= j and less(i, a) do i = i + 1 end
    while i <= j and not less(j, a) do j = j - 1 end
    if i > j then
      swap(j, a)
      return j, true
    end
    swap(i, j)
    i, j = i + 1, j - 1
    while true do
      while i <= j and less(i, a) do i = i + 1 end
      while i <= j and not less(j, a) do j = j - 1 end
      if i > j then break end
      swap(i, j)
      i, j = i + 1, j - 1
    end
    swap(j, a)
    return j, false
  end

  local function pdqsort(a, b, limit)
    local was_balanced, was_partitioned = true, true
    while true do
      local length = b - a
      if length <= 12 then
        insertion_sort(a, b)
        return
      end
      if limit == 0 then
        heap_sort(a, b)
        return
      end
      if not was_balanced then
        break_patterns(a, b)
        limit = limit - 1
      end
      local pivot, hint = choose_pivot(a, b)
      if hint == 2 then
        reverse_range(a, b)
        pivot = (b - 1) - (pivot - a)
        hint = 1
      end
      local done = false
      if was_balanced and was_partitioned and hint == 1 then
        done = partial_insertion_sort(a, b)
      end
      if done then return end
      if a > 0 and not less(a - 1, pivot) then
        a = partition_equal(a, b, pivot)
      else
        local mid, already = partition(a, b, pivot)
        was_partitioned = already
        local left_len, right_len = mid - a, b - mid
        local threshold = floor(length / 8)
        if left_len < right_len then
          was_balanced = left_len >= threshold
          pdqsort(a, mid, limit)
          a = mid + 1
        else
          was_balanced = right_len >= threshold
          pdqsort(mid + 1, b, limit)
          b = mid
        end
      end
    end
  end

  local n = #t
  if n <= 1 then return end
  local limit, m = 0, n
  while m > 0 do
    limit = limit + 1
    m = floor(m / 2)
  end
  pdqsort(0, n, limit)
end

return sort
